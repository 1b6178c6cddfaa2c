"""The model store: catalog, offline cache, GGUF and ONNX preparation (above configuration only)."""
