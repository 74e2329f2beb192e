/* eval/proposal.h: proposal metrics of the official ActivityNet proposal kit
 * (ANETproposal.average_recall_vs_avg_nr_proposals and evaluate): average recall against the
 * average number of proposals per video (AR@AN) and the area under that curve, with numpy's
 * arithmetic. Kept apart from eval.h only because eval.h had another writer when this was
 * added; the declarations belong in eval.h. (Named _ar: eval/proposals.c, written in parallel,
 * has a tal_eval_proposals of its own that feeds tal_eval_result.) */
#ifndef TAL_EVAL_PROPOSAL_H
#define TAL_EVAL_PROPOSAL_H

#include "eval/eval.h"

#define TAL_EVAL_AR_POINTS 100

typedef struct tal_eval_ar_result {
    int n_tiou;
    double tiou[TAL_EVAL_MAX_TIOU];
    double recall[TAL_EVAL_MAX_TIOU][TAL_EVAL_AR_POINTS]; /* [threshold][point] */
    double avg_recall[TAL_EVAL_AR_POINTS];                /* mean over thresholds */
    double an[TAL_EVAL_AR_POINTS]; /* average number of proposals per video at each point */
    double auc;                    /* percent: 100 * trapz(avg_recall, an) / an[99] */
    double ar_at[5];               /* AR@1, @5, @10, @50, @100: avg_recall[AN - 1], as BMN and
                                      ActionFormer read it (max_avg = 100 puts point k at AN k+1) */
    double max_avg;                /* max_avg_nr_proposals used */
    long n_proposals;              /* proposals given (every video, as the kit counts them) */
    long n_used;                   /* proposals kept on GT videos after the per-video cut */
    int n_videos;                  /* GT videos with at least one instance */
    long n_gt;
} tal_eval_ar_result;

/* AR vs AN of `d` (labels ignored; scores rank the proposals of each video) against `gt`.
 * max_avg: max_avg_nr_proposals (100 in BMN / ActionFormer / the challenge; <= 0: the kit's
 * default, proposals / GT videos). n_tiou 0: the dataset's default thresholds (ANet
 * linspace(0.5, 0.95, 10), THUMOS linspace(0.3, 0.7, 5)). Ties in score follow numpy 1.24's
 * argsort (the kit's order). Proposals on videos outside the GT still count in the kit's ratio.
 * Fails on no GT or no proposals (the kit divides by zero). */
tal_status tal_eval_proposals_ar(tal_eval_ar_result *out, const tal_eval_gt *gt,
                              const tal_eval_dets *d, double max_avg, int n_tiou,
                              const double *tiou, tal_err *err);

#endif
