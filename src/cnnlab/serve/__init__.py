"""Using a trained model: ``predict`` (a picture -> the answer), ``app`` (the HTTP API and the pages in
``static/``, for ``cnnlab serve``) and ``onnx`` (export for other runtimes)."""
