"""SchemaLab's Textual workbench. It drives the engine and reads the run log; it computes nothing."""
