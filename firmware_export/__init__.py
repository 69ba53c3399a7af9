"""Firmware export: models as C sources a microcontroller firmware includes, and their checks.

``c_model``   generates dependency-free C99 inference (LSTM, dense head, softmax, causal
              filter) in float32 and int8 from a trained model, refusing what it cannot express;
``build``     compiles it for the host and a Cortex-M4, runs the test firmware under QEMU,
              measures flash, RAM and instructions per decision;
``c_array``   the full-int8 .tflite as a const, 16-byte aligned byte array plus a header
              with its tensors' shapes, scales, zero points and class names (for TFLM);
``tflm``      runs the same bytes in the TensorFlow Lite Micro interpreter on the host.
"""
