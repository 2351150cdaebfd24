"""Ray Serve application `reranking`; the Serve config refers to `lorag.reranking.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("reranking").bind()
