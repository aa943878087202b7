"""The aws provider: clusters in the customer's own AWS account (a Pulumi stack), EC2 machines per work."""
