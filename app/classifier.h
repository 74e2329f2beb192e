/* app/classifier.h: an external video-level classifier's scores (ActivityNet's "CUHK" file,
 * spec-actionformer §8.5), fused into class-agnostic detections at inference. */
#ifndef TAL_APP_CLASSIFIER_H
#define TAL_APP_CLASSIFIER_H

#include "nn/nn.h"

typedef struct tal_video_classifier tal_video_classifier; /* opaque */

/* Reads {"class": [names...], "results": {video_id: [score per class], ...}}. Errors name the
 * file and the JSON path (wrong types, an empty or duplicated class list). */
tal_status tal_classifier_load(tal_video_classifier **out, const char *path, tal_err *err);
void tal_classifier_destroy(tal_video_classifier *c); /* NULL is fine */
int tal_classifier_n_classes(const tal_video_classifier *c);
char *const *tal_classifier_class_names(const tal_video_classifier *c); /* borrowed */
/* Scores of one video into scores[n_classes]: looked up as given, then without / with the
 * "v_" prefix (the CUHK file has no prefix, ActivityNet's own ids do). TAL_EINVAL naming the
 * file and the video when it is missing, has the wrong length or a non-finite score. */
tal_status tal_classifier_scores(const tal_video_classifier *c, const char *video_id, float *scores,
                                 tal_err *err);

#endif
