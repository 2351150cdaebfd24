"""Ray Serve application `embedding`; the Serve config refers to `lorag.embedding.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("embedding").bind()
