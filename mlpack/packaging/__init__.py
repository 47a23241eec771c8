"""Packaging: image plans, Dockerfiles and Docker image builds (imported only by the CLI).

``plan`` (frozen ``ImagePlan``) → ``dockerfile`` (pure rendering) → ``image`` (context
and engine build; ``wheels`` made on the host). Environments themselves live in
``mlpack.environments``.
"""
