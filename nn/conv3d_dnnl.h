/* nn/conv3d_dnnl.h (private to nn/): the CPU conv3d on oneDNN's convolution primitives, behind
 * the dispatcher in nn/conv3d.c. */
#ifndef TAL_NN_CONV3D_DNNL_H
#define TAL_NN_CONV3D_DNNL_H

#include "nn.h"

/* y = conv(x, w) + b (b may be none) for x [B, Ci, T, H, W], w [Co, Ci, kt, kh, kw], y
 * [B, Co, To, Ho, Wo] (all CPU). scratch: oneDNN's layouts of the operands and its scratchpad,
 * released before returning; a planner arena counts them and nothing is computed. */
void conv3d_forward_dnnl(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                         tal_conv3d_geom g, tal_arena *scratch);
/* Writes dx, accumulates dw (each skipped if none); scratch as the forward. */
void conv3d_backward_dnnl(tal_tensor dx, tal_tensor dw, tal_tensor dy, tal_tensor x,
                          tal_tensor w, tal_conv3d_geom g, tal_arena *scratch);

#endif
