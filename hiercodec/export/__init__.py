"""Float model -> exact model: quantization of the networks (`quantize`), the generic exporter of
a declared hierarchy (`hierarchy`), what VQ-VAE-2 adds (`vqvae2`), and exporting a training run
into the user's model folder or the zoo (`run`). The codec never imports this package."""
