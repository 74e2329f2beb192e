/* nn/schedule.c: learning-rate schedule: linear warm-up from 0, then cosine to min_lr. */
#include "nn.h"

#include <math.h>

/* step s (0-based, the step about to run):
 *   s < warmup:  base * (s + 1) / warmup           (so the first step is not at lr 0)
 *   otherwise:   min + (base - min) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2,
 *                held at min once s >= total. */
float tal_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps,
                           float base_lr, float min_lr) {
    if (step < warmup_steps) return base_lr * (float)(step + 1) / (float)warmup_steps;
    if (step >= total_steps || total_steps <= warmup_steps) return min_lr;
    double f = (double)(step - warmup_steps) / (double)(total_steps - warmup_steps);
    return (float)(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + cos(M_PI * f)));
}
