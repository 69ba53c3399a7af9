"""Runtime: the device side. Needs numpy, scipy (the causal filter) and one interpreter;
importing it never imports TensorFlow (a test checks ``sys.modules``).

``backends``  LiteRT, ONNX Runtime and a plain-numpy float LSTM behind one interface.
``reference`` the numpy float LSTM itself, the ground truth the interpreters are held to.
"""
