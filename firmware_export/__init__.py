"""Firmware export: models as C sources a microcontroller firmware includes, and their checks.

``runtime/``  the hand-written C99 runtime (``bse_lstm.c``: LSTM, dense head, softmax,
              causal filter, in float32 and int8) every generated model compiles with;
``c_model``   writes a trained model as data for it (weights, sizes, structs, the API
              under a prefix), refusing what it cannot express;
``int8_model`` the int8 arithmetic in numpy, operation for operation (the tests' reference);
``build``     compiles model + runtime for the host, a Cortex-M4 (test firmware under QEMU:
              flash, RAM, instructions per decision) and as CPU shared libraries;
``c_array``   the full-int8 .tflite as a const, 16-byte aligned byte array plus a header
              with its tensors' shapes, scales, zero points and class names (for TFLM);
``tflm``      runs the same bytes in the TensorFlow Lite Micro interpreter on the host.
"""
