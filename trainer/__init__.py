from trainer.trainer import JointTrainer

__all__ = ["JointTrainer"]
