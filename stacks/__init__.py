"""Pulumi programs for lit clusters (Pulumi.yaml: main: stacks/). The AWS stack lands with the aws provider."""
