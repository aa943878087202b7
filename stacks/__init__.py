"""Pulumi programs for lit clusters (Pulumi.yaml: main: stacks/). The AWS stack lands with the aws provider."""

VPC_CIDR = "10.77.0.0/16"  # the cluster's VPC; its subnets are /20s of it (network.py)
