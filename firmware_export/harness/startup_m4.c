/* Reset handler for the Cortex-M4 test firmware (QEMU mps2-an386): copy .data, clear .bss,
 * enable the FPU, start the SysTick counter used to count instructions, run main, exit
 * through semihosting. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

void reset_handler(void)
{
    uint32_t *src = &__etext, *dst = &__data_start__;
    while (dst < &__data_end__) *dst++ = *src++;
    for (dst = &__bss_start__; dst < &__bss_end__; ) *dst++ = 0;
    SCB_CPACR |= (0xFu << 20);                  /* CP10, CP11: full access to the FPU */
    __asm volatile ("dsb\n\tisb");
    SYST_RVR = 0x00FFFFFFu;                     /* free-running 24-bit down-counter */
    SYST_CVR = 0;
    SYST_CSR = 0x5u;                            /* enable, processor clock, no interrupt */
    initialise_monitor_handles();
    exit(main());
}

/* newlib calls these around main; this firmware has no global constructors. */
void _init(void) { }
void _fini(void) { }

static void hang(void) { for (;;) { } }

__attribute__((section(".vectors"), used))
const void *const vectors[16] = {
    &__stack_top, (const void *)reset_handler, (const void *)hang, (const void *)hang,
    (const void *)hang, (const void *)hang, (const void *)hang, 0, 0, 0, 0,
    (const void *)hang, (const void *)hang, 0, (const void *)hang, (const void *)hang,
};
