"""A Kubernetes test cluster of real parts: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built
from the Go modules (build.py), with test nodes (cmd/lit-node) that run pods as processes in namespaces (cluster.py).
"""
