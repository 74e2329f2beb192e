/* heads/internal.h: private to heads/: the channel-first masked attention core and small helpers
 * shared by the model, loss and post-processing files. */
#ifndef TAL_HEADS_INTERNAL_H
#define TAL_HEADS_INTERNAL_H

#include "heads.h"

/* Multi-head attention on channel-first tensors: q, k, v [B, C, T] with channel c = h * hd + d
 * (OpenTAD's view(B, H, hd, T)). qmask, kvmask [B, T]. window < 0: global attention, invalid
 * keys get -inf; window w > 0 (odd): query i sees keys |i - j| <= w / 2, invalid keys get -1e4
 * and rows of invalid queries are zeroed after the softmax (ActionFormer's local MHCA).
 * v is multiplied by kvmask before use (vm saved by the caller). probs [B, H, T, cols] saved,
 * cols = mhca_probs_cols(T, window): T (global) or the band w (local). */
void mhca_attention_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                            tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                            int window);
/* Writes dq, dk, dvm; dlogits (shaped as probs) is scratch. */
void mhca_attention_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                             tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                             tal_tensor probs, int n_head, int window);
int64_t mhca_probs_cols(int64_t T, int window);

/* x [B, C, T] *= m [B, T] (per column). */
void mask_columns(tal_tensor x, tal_tensor m);

#endif
