"""Command line: `python -m medcnn validate PATH` and `python -m medcnn predict MODEL IMAGES...`."""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m medcnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from medcnn import predict
    from medcnn.data import validate  # light modules: Keras is imported only by `predict` when it runs

    validate.add_arguments(commands.add_parser("validate", help=validate.__doc__.splitlines()[0]))
    predict.add_arguments(commands.add_parser("predict", help=predict.__doc__.splitlines()[0]))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
