{
  "algorithm": "zlib",
  "chunk_bounds": [
    0,
    750,
    1500,
    2250,
    3000,
    3750,
    3840
  ],
  "chunk_offsets": [
    0,
    6659,
    13348,
    19987,
    26699,
    33333,
    34206
  ],
  "chunk_order": "F",
  "comp_level": -1,
  "do_spatial_diff": false,
  "do_time_diff": true,
  "dtype": "int16",
  "n_channels": 9,
  "sample_rate": 30000.0,
  "sha1_compressed": "a820adb57c0b063659eb0f6ce7b7d6df8a4cc312",
  "sha1_uncompressed": "756252f274305042f7cbcb53e2edfa5611850261",
  "shape": [
    3840,
    9
  ],
  "version": "1.0"
}