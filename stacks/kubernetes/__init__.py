"""The Kubernetes cluster's Pulumi program: a lit cluster is a namespace the user already has, with lit's work
identity, its network isolation and (optionally) a GPU quota in it. `cluster.program` is run by a stack engine
(provisioner/engine.py) in its own Pulumi project; objects.py and rbac.py are pure functions (the manifests lit
makes per run, and the Role an admin grants lit), importable without Pulumi, as is this module.
"""

PROGRAM = "lit.stacks.kubernetes.cluster:program"
PROJECT = "lit-kubernetes"  # its own project: its stacks never collide with the aws clusters' ("lit")
SECRET_KEYS = ("lit:kubeconfig",)  # the engine keeps these encrypted in the stack's config
