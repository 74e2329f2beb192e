/* backbone/backbone.h: video backbones (Video Swin Transformer 3D, 3D ResNet bottlenecks) and the
 * Re2TAL rewiring of any residual chain into reversible couplings (re2tal-paper.md §2-§3,
 * spec-videoswin.md). Inside stages the layout is channel-last [B, D, H, W, C] (Swin) or
 * channel-first [B, C, T, H, W] (ResNet); the model's output is features [B, C, T'] after a
 * spatial mean. Forward and backward never allocate: activations live in arenas sized by the
 * planner (the same code path run on counting arenas). */
#ifndef TAL_BACKBONE_H
#define TAL_BACKBONE_H

#include "nn/nn.h"

/* ---------------------------------------------------------------- the generic engine ---- */
/* One residual function M of a chain z_n = z_{n-1} + M_n(z_{n-1}) (vanilla) or
 * z_n = z_{n-2} + M_n(z_{n-1}) (rewired). Input and output have the same shape.
 * Planning: when x.data is NULL every tensor is a counting-arena view; the functions then only
 * make their allocations (same sizes, same order) and compute nothing. */
typedef struct tal_resfn {
    /* Writes out = M(x). With keep != NULL, allocates in keep what backward needs and returns
     * it (opaque, lives in keep); otherwise returns NULL. Temporaries come from scratch and are
     * released before returning. step keys the drop-path mask (same step -> same mask).
     * keep may be the scratch arena itself (the reversible recompute): so every keep
     * allocation comes before the function takes its scratch mark. */
    void *(*forward)(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                     tal_arena *scratch, uint64_t step);
    /* Accumulates dx += J_M(x)^T dout and the parameter gradients; saved: what forward
     * returned (NULL while planning). dx may be dout itself (the vanilla chain's
     * g += J^T g, with no copy): every element of dout is read before its dx element is
     * written; otherwise dout is left unchanged. */
    void (*backward)(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                     tal_arena *scratch, uint64_t step);
    void *self;
    /* Optional (NULL: forward with keep, then backward): writes out = M(x) and accumulates
     * dx += J^T dout in one pass that keeps nothing beyond its own working set (the Swin
     * attention branch goes window group by window group). The reversible backward uses it.
     * Planning: dout is a NULL-data view of the right shape. */
    void (*recompute_backward)(void *self, tal_tensor out, tal_tensor dx, tal_tensor dout,
                               tal_tensor x, tal_arena *scratch, uint64_t step);
    /* 1: the original network applies a ReLU after the add (ResNet's bottleneck), so the
     * vanilla chain is z_n = relu(z_{n-1} + M_n(z_{n-1})). Rewired chains never do: there the
     * ReLU lives inside M (re2tal-paper.md §2.4), and M itself must differ by mode. */
    int post_relu;
    /* Optional (NULL: no notice): the store of M's parameters and their indices
     * [first_param, end_param). After M's backward the engine reports them final
     * (tal_params_grads_ready): data-parallel ranks may send them while the backward goes on. */
    tal_params *params;
    int first_param, end_param;
} tal_resfn;

typedef enum {
    TAL_STAGE_VANILLA = 0,        /* original residual net, activations stored */
    TAL_STAGE_REVERSIBLE = 1,     /* rewired, backward rebuilds inputs (spec §3.2) */
    TAL_STAGE_REWIRED_STORED = 2, /* rewired net with stored activations (test reference) */
} tal_stage_mode;

const char *tal_stage_mode_name(tal_stage_mode m);
/* "vanilla" | "reversible" | "rewired_stored"; returns -1 if unknown. */
int tal_stage_mode_parse(const char *s);

typedef struct tal_revstage tal_revstage; /* what a training forward keeps (lives in keep) */

/* y = stage(x) over fns[0..n-1]; x, y same shape. With keep == NULL this is inference
 * (nothing kept, returns NULL). Vanilla keeps every z_n and each function's saved state;
 * rewired-stored likewise for the rewired wiring; reversible keeps only the two final streams
 * (and rebuilds the rest in backward). x must stay valid until backward for vanilla and
 * rewired-stored (not for reversible). */
tal_revstage *tal_revstage_forward(const tal_resfn *fns, int n, tal_stage_mode mode, tal_tensor y,
                                   tal_tensor x, tal_arena *keep, tal_arena *scratch,
                                   uint64_t step);
/* Writes dx from dy (dx may be dy itself); parameter gradients accumulate. Consumes st
 * (reversible overwrites the kept streams while rebuilding). x: the stage input if still
 * available (optional for reversible): then *recon_err (if non-NULL) gets max |rebuilt z_0 - x|
 * over both streams, else -1. mode must be the forward's (it is passed again because planning
 * keeps no state). */
void tal_revstage_backward(const tal_resfn *fns, int n, tal_stage_mode mode, tal_revstage *st,
                           tal_tensor dx, tal_tensor dy, tal_tensor x, tal_arena *scratch,
                           uint64_t step, double *recon_err);
/* After a reversible backward: max |rebuilt z_0 - x| over both streams, x the stage input
 * computed some other way (for a caller that did not keep it); -1 for another mode. */
double tal_revstage_recon_error(const tal_revstage *st, tal_tensor x);
/* Wall seconds of st's training forward and of its backward (0 before it ran; st may be NULL). */
void tal_revstage_seconds(const tal_revstage *st, double *fwd_s, double *bwd_s);

/* ---------------------------------------------------------------- models ---------------- */
typedef enum { TAL_ARCH_SWIN = 0, TAL_ARCH_RESNET3D = 1, TAL_ARCH_SLOWFAST = 2 } tal_backbone_arch;

#define TAL_BACKBONE_MAX_STAGES 4

typedef struct tal_backbone_config {
    tal_backbone_arch arch;
    int n_stages;
    int embed_dim;                         /* Swin: C1; ResNet: stem channels */
    int depths[TAL_BACKBONE_MAX_STAGES];   /* residual blocks per stage */
    int heads[TAL_BACKBONE_MAX_STAGES];    /* Swin only */
    int window[3];                         /* Swin: t, h, w */
    int patch[3];                          /* Swin: t, h, w (kernel = stride) */
    float mlp_ratio;                       /* Swin */
    float drop_path_rate;                  /* spread linearly over all blocks (spec §8) */
    tal_stage_mode mode[TAL_BACKBONE_MAX_STAGES];
    int freeze_norms;                      /* norm_eval: norms frozen, no gradients */
    int chunk_frames;                      /* 0: whole clip at once; else frames per chunk */
    uint64_t seed;                         /* drop-path key seed */
    /* ResNet3D (SlowOnly) and SlowFast's slow pathway, as mmaction2's ResNet3d: stem conv
     * stem_kt x7x7 stride (1,2,2) + BN + ReLU + max-pool (1,3,3) stride (1,2,2); stage s has
     * planes = embed_dim * 2^s, 4 * planes out, spatial stride 1 then 2; conv1 of every block
     * of stage s is 3x1x1 when inflate[s] (else 1x1x1). */
    int stem_kt;
    int inflate[TAL_BACKBONE_MAX_STAGES];
    /* SlowFast: the slow pathway sees frames 0, tau, 2 tau, ... and the fast one every
     * (tau / alpha)-th frame with embed_dim / beta_inv stem channels (its own stem_kt and
     * inflate); laterals fast -> slow are convs (fusion_kernel, 1, 1) with temporal stride
     * alpha after the stem and stages 1..n-1. Clips must be multiples of tau frames. */
    int tau, alpha, beta_inv, fusion_kernel;
    int fast_stem_kt;
    int fast_inflate[TAL_BACKBONE_MAX_STAGES];
} tal_backbone_config;

#define TAL_BACKBONE_PRESETS                                                                  \
    "swin_t, swin_s, swin_b, swin_small_test, slowonly_r50, slowonly_r101, slowfast_r50, "     \
    "slowfast_r101, resnet3d_small"
/* Known names: "swin_t", "swin_s", "swin_b" (published), "swin_small_test" (embed 32, depths
 * 2,2,2,2, heads 1,2,4,8, window 4x4x4), "slowonly_r50", "slowonly_r101" (mmaction2's
 * ResNet3dSlowOnly), "slowfast_r50", "slowfast_r101" (ResNet3dSlowFast 8x8: tau 4, alpha 4,
 * beta_inv 8, fusion kernel 7, as the Re2TAL TAL configs), "resnet3d_small" (stem 8, depths
 * 2,3,2). Returns TAL_EINVAL naming the unknown name. Modes default to reversible, norms
 * frozen. */
tal_status tal_backbone_config_preset(tal_backbone_config *cfg, const char *name, tal_err *err);
/* Reads a JSON object: {"arch": "swin"|"resnet3d"|"slowfast", "preset": name (optional,
 * applied first), "embed_dim", "depths": [...], "heads": [...], "window": [t,h,w],
 * "patch": [t,h,w], "mlp_ratio", "drop_path_rate", "mode": "reversible" | [per stage],
 * "freeze_norms", "chunk_frames", "seed", "stem_kt", "inflate": [0/1 per stage],
 * "temporal_from" (inflate from that stage on), "tau", "alpha", "beta_inv", "fusion_kernel",
 * "fast_stem_kt", "fast_inflate"}. Errors name the key. */
tal_status tal_backbone_config_from_json(tal_backbone_config *cfg, const char *json_text,
                                         tal_err *err);
/* Checks ranges (depths, heads dividing dims, ...); errors name the field. */
tal_status tal_backbone_config_check(const tal_backbone_config *cfg, tal_err *err);
/* Output channels (Swin: embed * 2^(stages-1); ResNet: 4 * embed * 2^(stages-1); SlowFast:
 * the slow ones plus the fast ones, 2048 + 256 for the presets). */
int tal_backbone_out_channels(const tal_backbone_config *cfg);
/* Output temporal length for an input of `frames` frames (per chunk, chunks concatenated):
 * Swin frames / patch_t, ResNet3D frames, SlowFast the fast pathway's frames / (tau / alpha)
 * (the slow features are interpolated onto that grid). */
int tal_backbone_out_frames(const tal_backbone_config *cfg, int frames);

typedef struct tal_backbone tal_backbone; /* opaque */

/* Declares the parameters in p (names as the mmaction2 checkpoints, see tal_backbone_load);
 * weights in `group`, norms/biases/bias tables in `group_no_decay`. The caller allocates p
 * (tal_params_allocate) and then calls tal_backbone_init or tal_backbone_load. */
tal_status tal_backbone_create(tal_backbone **out, const tal_backbone_config *cfg, tal_params *p,
                               int group, int group_no_decay, tal_err *err);
void tal_backbone_destroy(tal_backbone *bb); /* NULL is fine */
const tal_backbone_config *tal_backbone_config_of(const tal_backbone *bb);
/* Random init as the reference (trunc-normal 0.02 linears and bias tables, LN 1/0, He for
 * convs, BN identity); deterministic from seed. Parameters must be allocated. */
void tal_backbone_init(tal_backbone *bb, uint64_t seed);

/* Memory a model needs for clips [batch, 3, frames, height, width] (frames per chunk when
 * chunking), in bytes, without allocating anything (counting arenas). */
typedef struct tal_backbone_plan {
    size_t params_bytes, grads_bytes, optim_bytes; /* AdamW: 2 moments */
    size_t consts_bytes;  /* masks, window index maps */
    size_t keep_bytes;    /* activations kept from forward for backward (peak) */
    size_t scratch_bytes; /* transient working set (peak) */
    size_t infer_bytes;   /* inference forward peak (scratch only) */
} tal_backbone_plan;
tal_status tal_backbone_plan_memory(tal_backbone_plan *out, const tal_backbone_config *cfg,
                                    int batch, int frames, int height, int width, tal_err *err);
/* The same for a model on dev. The device's scratch differs from the CPU's in the attention
 * backward alone (one [heads, n, n] buffer per call instead of row blocks per thread); consts,
 * keep and the inference peak are the same. Needs no GPU (nothing is allocated). */
tal_status tal_backbone_plan_memory_on(tal_backbone_plan *out, const tal_backbone_config *cfg,
                                       tal_device dev, int batch, int frames, int height,
                                       int width, tal_err *err);

/* Sizes and allocates the arenas for this clip shape (frames: per chunk when chunking), on the
 * device of the model's parameters (initialise or load them on the CPU, tal_params_move, then
 * prepare): a model on the GPU then takes its video, features and gradients there too.
 * TAL_ENOMEM (TAL_EDEVICE on the GPU) if an arena cannot be allocated; TAL_EINVAL for a bad
 * shape. */
tal_status tal_backbone_prepare(tal_backbone *bb, int batch, int frames, int height, int width,
                                tal_err *err);
/* Arena high-water marks since prepare (keep, scratch), for comparing with the plan. */
void tal_backbone_high_water(const tal_backbone *bb, size_t *keep_bytes, size_t *scratch_bytes);
/* Wall seconds the last training forward / backward spent inside the residual chains (the
 * stages' blocks, without stem, merging and head adapter): what a per-block benchmark times. */
void tal_backbone_block_seconds(const tal_backbone *bb, double *fwd_s, double *bwd_s);

/* Inference: video [B, 3, T, H, W] (T = prepared frames, or any multiple of the chunk when
 * chunking; a short last chunk is zero-padded) -> feats [B, C_out, T_out]. */
void tal_backbone_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video);
/* Training forward of one prepared clip (no chunking): keeps what backward needs in the keep
 * arena. video is borrowed until tal_backbone_backward (the stem's weight gradient reads it). */
void tal_backbone_forward_train(tal_backbone *bb, tal_tensor feats, tal_tensor video);
/* Backward of the last forward_train: dfeats [B, C_out, T_out]; parameter gradients accumulate.
 * Reports the worst stage-input reconstruction error of reversible stages in *recon_err (if
 * non-NULL; -1 when no stage is reversible). */
void tal_backbone_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err);
/* The last backward's reconstruction error per stage into out[0..n_stages) (the worst of its
 * blocks, both pathways for SlowFast; -1 where none was measured: vanilla stages, a backward
 * without recon_err, chunked clips); returns n_stages. */
int tal_backbone_recon_errors(const tal_backbone *bb, double *out);
/* Chunked training for long clips, in two calls: the features of the whole clip, chunk by chunk,
 * keeping nothing but with the training step's drop-path masks (set the step first); then, after
 * the head, for each chunk a training forward and a backward with that chunk's slice of dfeats,
 * gradients accumulated. Memory: one chunk. */
void tal_backbone_forward_chunked_train(tal_backbone *bb, tal_tensor feats, tal_tensor video);
void tal_backbone_backward_chunked(tal_backbone *bb, tal_tensor dfeats, tal_tensor video);
/* Drop-path masks are keyed by (seed, step, block); set the step before each training step. */
void tal_backbone_set_step(tal_backbone *bb, uint64_t step);

/* Output adapter for the head: features [B, C, Tin] -> [B, C, Tout] by linear interpolation
 * (align_corners=False); Tout == Tin copies. */
void tal_backbone_resize_forward(tal_tensor out, tal_tensor feats);
void tal_backbone_resize_backward(tal_tensor dfeats, tal_tensor dout);

/* ---------------------------------------------------------------- checkpoints ----------- */
/* Loads weights from safetensors, accepting the ordinary mmaction2 / Video-Swin names (with or
 * without "backbone."; final norm "norm" or "norm3"; SlowFast "slow_path." / "fast_path.")
 * and the rewired ones ("...blocks.{b}.inv_block.Fm.norm1..." / "...Gm.mlp...", ResNet
 * "[slow_path.]layer1.blocks.0.Fm...", "...blocks.0.downsample...",
 * "...blocks.{i}.inv_block.Fm..." as OpenTAD's re2tal_slowfast.py).
 * Buffers (relative_position_index, num_batches_tracked) and heads are ignored (counted in
 * *n_unused). A missing parameter or a shape mismatch is an error naming the tensor. */
tal_status tal_backbone_load(tal_backbone *bb, tal_params *p, const char *path, int *n_unused,
                             tal_err *err);
/* Maps one checkpoint name to the canonical parameter name (buf), or NULL when it is not a
 * backbone parameter. Usable as a tal_name_map_fn (ctx unused). */
const char *tal_backbone_canonical_name(const char *file_name, char *buf, size_t size,
                                        void *ctx);
/* Canonical -> rewired (OpenTAD) name: "layers.0.blocks.1.norm1.weight" ->
 * "layers.0.blocks.1.inv_block.Fm.norm1.weight" (other names unchanged). */
const char *tal_backbone_rewired_name(const char *name, char *buf, size_t size);
/* Reads a checkpoint (ordinary or rewired names), writes it with rewired names, prefix
 * "backbone." kept if present; non-backbone tensors copied unchanged. *n_renamed counts the
 * renamed tensors. */
tal_status tal_backbone_rewire_file(const char *in_path, const char *out_path, int *n_renamed,
                                    tal_err *err);

#endif /* TAL_BACKBONE_H */
