/* Test firmware: classify the real windows embedded in windows.h and print one line per
 * window over semihosting (or stdout on the host):
 *
 *   <index> <class index> <probability bits, hex, one per class> <SysTick ticks>
 *
 * Probabilities are printed as their IEEE-754 bits, so host and Cortex-M4 outputs are
 * compared exactly. On the Cortex-M4 the ticks are those of QEMU's SysTick at 25 MHz; under
 * -icount shift=0 one instruction is one nanosecond, so instructions = 40 x ticks. The
 * model's check runs once, before the first window; a failure prints "check failed". */
#include <stdint.h>
#include <stdio.h>
#include "model_api.h"
#include "windows.h"

#if defined(__arm__)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint32_t ticks(void) { return SYST_CVR; }
#else
static uint32_t ticks(void) { return 0u; }
#endif

static model_state_t state;

int main(void)
{
    float probs[MODEL_N_CLASSES];
    int i, k, best, status = model_check();
    if (status != 0) {
        printf("check failed: %s\n", bse_lstm_status_text((bse_lstm_status_t)status));
        return 1;
    }
    for (i = 0; i < TEST_N_WINDOWS; i++) {
        uint32_t t0 = ticks(), t1;
        model_init(&state);
        model_push(&state, test_x[i], TEST_N_STEPS);
        best = model_decision(&state, test_side[i], probs);
        t1 = ticks();
        printf("%d %d", i, best);
        for (k = 0; k < MODEL_N_CLASSES; k++) {
            union { float f; uint32_t u; } bits;
            bits.f = probs[k];
            printf(" %08lx", (unsigned long)bits.u);
        }
        printf(" %lu\n", (unsigned long)((t0 - t1) & 0x00FFFFFFu));
    }
    return 0;
}
