"""Firmware export: models as C sources a microcontroller firmware includes.

``c_array``   the full-int8 .tflite as a const, 16-byte aligned byte array plus a header
              with its tensors' shapes, scales, zero points and class names (for TFLM);
``tflm``      runs the same bytes in the TensorFlow Lite Micro interpreter on the host.
"""
