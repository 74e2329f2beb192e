/* app/cmd_rewire.c: `re2tal rewire IN OUT`: writes a backbone checkpoint with the Re2TAL rewired
 * parameter names (OpenTAD's inv_block.Fm / Gm); the values are unchanged, since the rewiring
 * adds no parameter (re2tal-paper.md §2). */
#include <stdio.h>

#include "app/commands.h"
#include "backbone/backbone.h"

static int cmd_rewire(int argc, char **argv) {
    if (argc == 2 && tal_is_help(argv[1])) {
        printf("usage: re2tal rewire IN.safetensors OUT.safetensors [--allow-nonfinite]\n\n"
               "Renames an ordinary Video Swin / ResNet3D checkpoint (mmaction2 names, with or\n"
               "without 'backbone.') to the rewired names of a Re2TAL checkpoint:\n"
               "  layers.S.blocks.B.norm1|attn.*  -> layers.S.blocks.B.inv_block.Fm.*\n"
               "  layers.S.blocks.B.norm2|mlp.*   -> layers.S.blocks.B.inv_block.Gm.*\n"
               "  layerS.0.* / layerS.B.*         -> layerS.blocks.0.Fm.* / "
               "layerS.blocks.B.inv_block.Fm.*\n"
               "Values are copied unchanged (the rewiring adds no parameter); other tensors are\n"
               "kept. Make IN from a .pth with tools/convert_checkpoint.py. Tensors holding NaN\n"
               "or Inf are refused unless --allow-nonfinite.\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: re2tal rewire IN.safetensors OUT.safetensors\n");
        return 2;
    }
    tal_err err = {0};
    int renamed = 0;
    if (tal_backbone_rewire_file(argv[1], argv[2], &renamed, &err) != TAL_OK) {
        fprintf(stderr, "re2tal rewire: %s\n", err.msg);
        return 1;
    }
    printf("re2tal rewire: %s -> %s (%d tensors renamed)\n", argv[1], argv[2], renamed);
    return 0;
}
TAL_COMMAND("rewire", 610, "rename a backbone checkpoint to the rewired (reversible) names",
            cmd_rewire)
