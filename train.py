"""Train the stacked multi-head hourglass network: `python train.py -c config.json`."""
import argparse
import logging

import torch
from torch import nn

import data_loader.data_loaders as module_data
import model.loss as module_loss
import model.network as module_arch
import trainer as module_trainer
from base.base_trainer import TrainerSettings
from utils.config import LOG_FORMAT, ConfigParser, Override
from utils.distributed import init_distributed, shutdown_distributed
from utils.errors import run_cli
from utils.seeding import seed_everything

logger = logging.getLogger("train")


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", help="config file (default: the checkpoint's config)")
    parser.add_argument("-r", "--resume", help="checkpoint to resume from")
    parser.add_argument("-d", "--device",
                        help="CUDA_VISIBLE_DEVICES, e.g. 0 or 2,3 (one process uses the first; "
                             "torchrun starts one per GPU)")
    config = ConfigParser.from_args(parser, [
        Override(["--lr", "--learning-rate"], float, "optimizer.args.lr"),
        Override(["--bs", "--batch-size"], int, "data_loader.args.batch_size"),
        Override(["--epochs"], int, "trainer.epochs"),
    ], args)
    settings = config.settings(TrainerSettings, "trainer")
    context = init_distributed()
    logging.basicConfig(level=logging.INFO if context.is_main else logging.WARNING,
                        format=LOG_FORMAT, force=True)
    try:
        seed_everything(settings.seed, settings.deterministic)
        # The labels share the skeleton parameters of the `graph` section with the graphs.
        data_loader = config.init_obj("data_loader", module_data, graph=config.section("graph"))
        valid_data_loader = (data_loader.split_loader(settings.valid_split)
                             if settings.valid_split else None)
        model = config.init_obj("arch", module_arch)
        if context.enabled and settings.sync_bn:
            if context.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                logger.warning("trainer.sync_bn ignored: SyncBatchNorm needs CUDA")
        memory_format = (torch.channels_last if settings.channels_last
                         and context.device.type == "cuda" else torch.contiguous_format)
        model = model.to(context.device, memory_format=memory_format)
        criterion = config.init_obj("loss", module_loss)
        optimizer = config.init_obj("optimizer", torch.optim, model.parameters())
        lr_scheduler = (config.init_obj("lr_scheduler", torch.optim.lr_scheduler, optimizer)
                        if config.get("lr_scheduler") else None)
        trainer_class = config.find_type("trainer", module_trainer)
        trainer = trainer_class(model, criterion, optimizer, config, context, data_loader,
                                valid_data_loader, lr_scheduler)
        if context.is_main:
            logger.info("%s on %s, %d process(es); %s trainable parameters",
                        type(model).__name__, context.device, context.world_size,
                        f"{model.num_parameters():,}")
        trainer.train()
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    run_cli(main)
