/* Test firmware: classify the real windows embedded in windows.h and print one line per
 * window over semihosting (or stdout on the host):
 *
 *   <index> <class index> <probability bits, hex, one per class> <SysTick ticks>
 *
 * Probabilities are printed as their IEEE-754 bits, so host and Cortex-M4 outputs are
 * compared exactly. On the Cortex-M4 the ticks are those of QEMU's SysTick at 25 MHz; under
 * -icount shift=0 one instruction is one nanosecond, so instructions = 40 x ticks. */
#include <stdint.h>
#include <stdio.h>
#include MODEL_HEADER
#include "windows.h"

#if defined(__arm__)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint32_t ticks(void) { return SYST_CVR; }
#else
static uint32_t ticks(void) { return 0u; }
#endif

static bse_state_t state;

int main(void)
{
    float probs[BSE_N_CLASSES];
    int i, k, best;
    for (i = 0; i < TEST_N_WINDOWS; i++) {
        uint32_t t0 = ticks(), t1;
        bse_init(&state);
        bse_push(&state, test_x[i], TEST_N_STEPS);
        best = bse_decision(&state, test_side[i], probs);
        t1 = ticks();
        printf("%d %d", i, best);
        for (k = 0; k < BSE_N_CLASSES; k++) {
            union { float f; uint32_t u; } bits;
            bits.f = probs[k];
            printf(" %08lx", (unsigned long)bits.u);
        }
        printf(" %lu\n", (unsigned long)((t0 - t1) & 0x00FFFFFFu));
    }
    return 0;
}
