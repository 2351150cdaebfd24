"""Ray Serve application `rag`; the Serve config refers to `lorag.rag.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("rag").bind()
