"""Export: a trained run folder -> an artifact folder the device can trust.

TFLite (float32, float16, dynamic-range int8, full int8, 16x8 where the converter can),
ONNX (float32 with a native LSTM node, dynamic int8), the full-int8 model as C arrays for
TensorFlow Lite Micro (``firmware_export``), and ``manifest.json`` with every file's sha256.
Every artifact is run in its own runtime on the held-out split and compared with the
float Keras model; the numbers go into the manifest.
"""
