/* Test firmware of the signal chain: push the signal embedded in chain_signal.h through the
 * QRS detector (bse_qrs) CHAIN_PUSH samples at a time, each beat into the RR features
 * (bse_rr), and print over semihosting (or stdout on the host):
 *
 *   B <beat sample> [<7 feature bits, hex>]   per beat (features of the previous beat, once known)
 *   T <SysTick ticks in all pushes> <ticks of the longest push> <samples>
 *
 * Features are printed as their IEEE-754 bits, so host and Cortex-M4 are compared exactly.
 * Ticks as in firmware_main.c: 40 instructions each under -icount shift=0; printing is not
 * counted. */
#include <stdint.h>
#include <stdio.h>

#include "bse_qrs.h"
#include "bse_rr.h"
#include "chain_signal.h"

#if defined(__arm__)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static uint32_t ticks(void) { return SYST_CVR; }
#else
static uint32_t ticks(void) { return 0u; }
#endif

#define MAX_BEATS 64
extern const bse_qrs_config_t chain_qrs;
static bse_qrs_state_t qrs;
static bse_rr_state_t rr;
static int32_t beats[MAX_BEATS], has_features[MAX_BEATS];
static float features[MAX_BEATS][BSE_RR_N_FEATURES];

int main(void)
{
    int32_t pos, n, k, j, n_beats;
    uint32_t total = 0, longest = 0;
    if (bse_qrs_init(&qrs, &chain_qrs) != BSE_QRS_OK || bse_rr_init(&rr, CHAIN_FS_HZ, 10, 300.0f) != BSE_RR_OK) {
        printf("init failed\n");
        return 1;
    }
    for (pos = 0; pos < CHAIN_N_SAMPLES; pos += n) {
        uint32_t t0, spent;
        n = CHAIN_N_SAMPLES - pos < CHAIN_PUSH ? CHAIN_N_SAMPLES - pos : CHAIN_PUSH;
        t0 = ticks();
        n_beats = bse_qrs_push(&qrs, chain_x + pos, n, beats, MAX_BEATS);
        for (k = 0; k < n_beats; k++)
            has_features[k] = bse_rr_push(&rr, beats[k], features[k]);
        spent = (t0 - ticks()) & 0x00FFFFFFu;
        total += spent;
        longest = spent > longest ? spent : longest;
        for (k = 0; k < n_beats; k++) {
            printf("B %ld", (long)beats[k]);
            for (j = 0; has_features[k] == 1 && j < BSE_RR_N_FEATURES; j++) {
                union { float f; uint32_t u; } bits;
                bits.f = features[k][j];
                printf(" %08lx", (unsigned long)bits.u);
            }
            printf("\n");
        }
    }
    printf("T %lu %lu %ld dropped %ld\n", (unsigned long)total, (unsigned long)longest, (long)CHAIN_N_SAMPLES,
           (long)qrs.n_dropped_beats);
    return 0;
}
