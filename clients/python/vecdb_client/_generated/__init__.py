"""Generated from proto/vecdb.proto by scripts/gen_proto.py: do not edit."""
