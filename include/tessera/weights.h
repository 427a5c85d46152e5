/* weights: load VGG-19 weights from files.
 *
 * safetensors (torchvision / timm names features.N.weight, features.N.bias; F32, F16,
 * BF16), validated as the reference implementation does.  Caffe
 * VGG_ILSVRC_19_layers.caffemodel through a bounded protobuf wire-format reader.
 * Channel counts come from the file (a narrow VGG-19 loads too); convolutions must
 * chain.  Every error names the file and, where there is one, the tensor. */
#ifndef TESSERA_WEIGHTS_H
#define TESSERA_WEIGHTS_H

#include "tessera/vgg.h"

/* Load by content: safetensors (8-byte length + '{'), else Caffe protobuf.  Returns a
 * network the caller owns (ts_vgg_destroy), or NULL with a message.  The result has
 * input mode TORCH (ImageNet mean/std) for safetensors and CAFFE (BGR, mean pixel
 * 103.939 116.779 123.68) for Caffe. */
ts_vgg *ts_weights_load(const char *path);
ts_vgg *ts_weights_load_safetensors(const char *path);
ts_vgg *ts_weights_load_caffe(const char *path);

#endif
