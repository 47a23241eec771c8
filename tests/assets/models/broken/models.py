from mlpack import MLModel


class BrokenModel(MLModel):
    async def load(self) -> bool:
        raise RuntimeError("weights file is corrupt")
