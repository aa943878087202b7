"""Entry point for the Pulumi CLI (Pulumi.yaml: main: stacks/). Needs lit installed: pip install 'lit[aws]'."""

from lit.stacks.cluster import program

program()
