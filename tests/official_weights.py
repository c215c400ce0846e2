"""Where the configs' ImageNet weights come from: the official release URLs.

FasterNet: the v1.0 release of the authors' repository; GhostNetV2: timm's
files on the Hugging Face Hub. The tests compare the configs and the model
index with these; nothing is downloaded.
"""
FASTERNET_RELEASE = ('https://github.com/JierunChen/FasterNet/releases/'
                     'download/v1.0')
# variant: the file name of its ImageNet weights in the release
FASTERNET_ASSETS = {
    't0': 'fasternet_t0-epoch.281-val_acc1.71.9180.pth',
    't1': 'fasternet_t1-epoch.291-val_acc1.76.2180.pth',
    't2': 'fasternet_t2-epoch.289-val_acc1.78.8860.pth',
    's': 'fasternet_s-epoch.299-val_acc1.81.2840.pth',
    'm': 'fasternet_m-epoch.291-val_acc1.82.9620.pth',
    'l': 'fasternet_l-epoch.299-val_acc1.83.5060.pth',
}


def fasternet_url(arch: str) -> str:
    """URL of FasterNet-``arch``'s official ImageNet weights."""
    return f'{FASTERNET_RELEASE}/{FASTERNET_ASSETS[arch]}'


def ghostnetv2_url(width: str) -> str:
    """URL of timm's GhostNetV2 ImageNet weights; ``width`` as in timm's
    model names: '100', '130' or '160'."""
    return (f'https://huggingface.co/timm/ghostnetv2_{width}.in1k/resolve/'
            'main/model.safetensors')
