"""Resumable uploads: a version's files announced up front, sent in offset-addressed parts (in
any order, each as often as needed), then completed into a version that validates as a
one-request upload does."""
