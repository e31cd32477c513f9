"""`eedi export`: a retrieval model converted for CPU runtimes (OpenVINO, ONNX Runtime),
optionally quantised to int8 on the competition's texts and checked against its source."""
