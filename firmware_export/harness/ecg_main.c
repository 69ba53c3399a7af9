/* Test firmware of the whole ECG chain (bse_ecg with a generated model): raw ADC counts
 * embedded in ecg_signal.h, converted to mV ((count - baseline) / gain, per channel) and
 * pushed ECG_PUSH samples at a time through bse_ecg_push, then bse_ecg_flush; prints over
 * semihosting (or stdout on the host):
 *
 *   E <kind> <input sample> <class> <flags> <probability bits, hex...>   per event
 *   T <SysTick ticks in all pushes> <ticks of the longest push> <samples> <dropped events> <max report lag>
 *     <stack bytes>
 *
 * Probabilities as IEEE-754 bits, so host and Cortex-M4 compare exactly. Ticks as in
 * firmware_main.c (40 instructions each under -icount shift=0); the conversion from counts
 * is counted, printing is not. The stack the chain uses is measured on the Cortex-M4: the
 * STACK_WORDS words below main's stack pointer (less a guard) are painted before each push and the deepest word
 * changed is found after it (neither counted); 0 on the host. */
#include <stdint.h>
#include <stdio.h>

#include "bse_ecg.h"
#include "ecg_signal.h"

#define STACK_WORDS 2048u
#define STACK_GUARD 16u /* words below main's stack pointer left unpainted (the call's own) */
#define PAINT 0xA5C3E187u
#if defined(__arm__)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint32_t ticks(void) { return SYST_CVR; }
#else
static uint32_t ticks(void) { return 0u; }
#endif

#define MAX_EVENTS 64
extern const bse_ecg_config_t ecg_chain;
static bse_ecg_state_t state;
static bse_ecg_event_t events[MAX_EVENTS];
static float x[ECG_PUSH * ECG_N_CHANNELS];

static void print_events(int32_t n, int32_t n_classes)
{
    int32_t k, j;
    for (k = 0; k < n; k++) {
        const bse_ecg_event_t *e = &events[k];
        printf("E %ld %ld %ld %lu", (long)e->kind, (long)e->sample, (long)e->class_index, (unsigned long)e->flags);
        for (j = 0; e->kind == BSE_ECG_BEAT && j < n_classes; j++) {
            union { float f; uint32_t u; } bits;
            bits.f = e->probs[j];
            printf(" %08lx", (unsigned long)bits.u);
        }
        printf("\n");
    }
}

int main(void)
{
    int32_t pos, n, i, ch, n_events, n_classes;
    uint32_t total = 0, longest = 0, stack_bytes = 0, w;
    volatile uint32_t *painted = 0;
#if defined(__arm__)
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    painted = (volatile uint32_t *)(sp - 4u * (STACK_GUARD + STACK_WORDS));
#endif
    if (bse_ecg_init(&state, &ecg_chain) != BSE_ECG_OK) {
        printf("init failed\n");
        return 1;
    }
    n_classes = ecg_chain.model->n_classes;
    for (pos = 0; pos < ECG_N_SAMPLES; pos += n) {
        uint32_t t0, spent;
        n = ECG_N_SAMPLES - pos < ECG_PUSH ? ECG_N_SAMPLES - pos : ECG_PUSH;
#if defined(__arm__)
        for (w = 0; w < STACK_WORDS; w++)
            painted[w] = PAINT;
#endif
        t0 = ticks();
        for (i = 0; i < n; i++)
            for (ch = 0; ch < ECG_N_CHANNELS; ch++)
                x[i * ECG_N_CHANNELS + ch] =
                    (float)(ecg_counts[pos + i][ch] - ecg_baseline[ch]) / ecg_gain[ch];
        n_events = bse_ecg_push(&state, x, n, events, MAX_EVENTS);
        spent = (t0 - ticks()) & 0x00FFFFFFu;
        total += spent;
        longest = spent > longest ? spent : longest;
#if defined(__arm__)
        for (w = 0; w < STACK_WORDS && painted[w] == PAINT; w++) {
        }
        if (4u * (STACK_WORDS + STACK_GUARD - w) > stack_bytes && w < STACK_WORDS)
            stack_bytes = 4u * (STACK_WORDS + STACK_GUARD - w);
#endif
        print_events(n_events, n_classes);
    }
    print_events(bse_ecg_flush(&state, events, MAX_EVENTS), n_classes);
    (void)painted;
    (void)w;
    printf("T %lu %lu %ld %ld %ld %lu\n", (unsigned long)total, (unsigned long)longest, (long)ECG_N_SAMPLES,
           (long)state.n_dropped_events, (long)state.max_report_lag, (unsigned long)stack_bytes);
    return 0;
}
