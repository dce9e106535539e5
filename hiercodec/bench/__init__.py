"""The benchmark wing: everything that measures hiercodec against others, none of it codec.

- peers: the lossless peer codecs (PNG through oxipng, JPEG XL, WebP, JPEG 2000, JPEG-LS, AVIF);
- peers_lossy: the lossy peers (JPEG, WebP, JPEG XL), run at a matched rate;
- heldout: the held-out photos (never trained on), fetched and pinned by SHA-256;
- quality: the quality metrics (PSNR, MS-SSIM) in plain numpy;
- lossless: `hiercodec bench`, its tables (CSV, JSON, Markdown) and plot;
- lossy: `hiercodec bench --lossy`, its rate-distortion tables and plot.

The codec (container, coders, models, encode and decode) never imports this package; only the
CLI's bench command, training, the relay, benchmarks/ and verify's PSNR of a lossy file (lazily,
from quality) do. Nothing is imported here: name the module, e.g. hiercodec.bench.peers.
"""
