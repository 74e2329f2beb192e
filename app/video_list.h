/* app/video_list.h: the videos a command runs over, from its arguments: video files, folders
 * (their video files, sorted by name) and --list files (one path per line). */
#ifndef TAL_APP_VIDEO_LIST_H
#define TAL_APP_VIDEO_LIST_H

#include "nn/nn.h"

typedef struct tal_video_list {
    char **paths;  /* owned */
    int n;
} tal_video_list;

/* Appends `arg`: a folder adds its files with a video extension (.mp4, .mkv, .webm, .avi, .mov,
 * ...) in name order, anything else is taken as a video path (a bad one is reported when
 * opened). */
tal_status tal_video_list_add(tal_video_list *l, const char *arg, tal_err *err);
/* The same for feature files: a folder adds its .npy files in name order. */
tal_status tal_video_list_add_features(tal_video_list *l, const char *arg, tal_err *err);
/* Appends the paths listed in `file`, one per line (blank lines and lines starting with '#'
 * skipped; relative paths are relative to the current folder). */
tal_status tal_video_list_add_file(tal_video_list *l, const char *file, tal_err *err);
void tal_video_list_free(tal_video_list *l);

/* ---------------------------------------------------------------- ranks ----------------- */
/* Owner rank of each video (mpirun): shares balanced by duration (each rank probes every
 * file, so all compute the same split; an unreadable file costs nothing and is reported by its
 * owner). One process: all 0. */
void tal_video_list_share(const tal_video_list *l, int *owner);
/* msgs[i]: why this rank's video i was skipped (NULL: done, or not this rank's). Rank 0 prints
 * every rank's "warning: skipped video: MSG" lines in list order (one process: prints nothing,
 * the caller reported them as they came); returns the job's count, the same on every rank. */
int tal_video_list_report_skipped(const tal_video_list *l, char **msgs);

#endif
