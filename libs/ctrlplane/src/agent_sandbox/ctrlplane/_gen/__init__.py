"""Generated protobuf/gRPC stubs (scripts/gen-protos-ctrlplane); do not edit by hand."""
