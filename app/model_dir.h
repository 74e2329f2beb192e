/* app/model_dir.h: opening a trained model from a run folder (config.json, classes.txt,
 * best/ or last/) for inference and feature extraction. */
#ifndef TAL_APP_MODEL_DIR_H
#define TAL_APP_MODEL_DIR_H

#include "app/pipeline.h"

typedef struct tal_loaded_model {
    tal_run_config rc;
    tal_model m;
    char **class_names;
    int n_classes;
    char checkpoint[1200];     /* the weights file loaded (<ckpt>/model.safetensors) */
} tal_loaded_model;

/* dir: a run folder (uses best/, else last/) or a checkpoint folder inside one. */
tal_status tal_model_open_dir(tal_loaded_model *lm, const char *dir, tal_err *err);
void tal_model_close_dir(tal_loaded_model *lm);

/* A dataset entry for a raw video, from its metadata: id = file name without folder and
 * extension (owned: free v->id), duration, fps, exact frame count (counted when the container
 * does not know it). */
tal_status tal_video_anno_probe(tal_video_anno *v, const char *path, tal_err *err);

#endif
