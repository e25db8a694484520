"""Models: `scratch` (the allgray CNN), `backbones` + `weights` + `heads` + `transfer` (ImageNet transfer
learning), `blocks` + `deformable` (the chromosome ablation). Import the module you need; nothing is loaded here."""
