"""Published facts the model cards cite: the method papers, the GCA paper's Table 2 numbers,
lightly's benchmark reference points, dataset display names and Hub dataset ids.

Nothing here is measured by otzoo; every number is quoted from the named publication.
"""

METHOD_NAMES = {
    "simclr": "SimCLR (InfoNCE)", "gca_ince": "GCA-INCE", "gca_rince": "GCA-RINCE", "gca_uot": "GCA-UOT",
    "rince": "RINCE", "iot": "IOT", "iot_uni": "IOT-uni", "sinsim": "SinSim", "matching_gap": "Matching Gap",
    "otco": "OTCO", "byol": "BYOL",
}

# what each method is, for the Hub tags: the baselines (simclr, rince, byol) solve no optimal-transport problem,
# and BYOL is not contrastive (no negatives)
OT_METHODS = ("gca_ince", "gca_rince", "gca_uot", "iot", "iot_uni", "sinsim", "matching_gap", "otco")
NON_CONTRASTIVE = ("byol",)

GCA_PAPER = {
    "title": "Your contrastive learning problem is secretly a distribution alignment problem",
    "authors": "Zihao Chen, Chi-Heng Lin, Ran Liu, Jingyun Xiao, Eva L. Dyer",
    "venue": "NeurIPS 2024",
    "bibtex": ("@inproceedings{chen2024gca,\n"
               "  title     = {Your contrastive learning problem is secretly a distribution alignment problem},\n"
               "  author    = {Chen, Zihao and Lin, Chi-Heng and Liu, Ran and Xiao, Jingyun and Dyer, Eva L.},\n"
               "  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},\n"
               "  year      = {2024}\n}"),
}

PAPERS = {
    "gca_ince": GCA_PAPER, "gca_rince": GCA_PAPER, "gca_uot": GCA_PAPER,
    "simclr": {
        "title": "A Simple Framework for Contrastive Learning of Visual Representations",
        "authors": "Ting Chen, Simon Kornblith, Mohammad Norouzi, Geoffrey Hinton", "venue": "ICML 2020",
        "url": "https://arxiv.org/abs/2002.05709",
        "bibtex": ("@inproceedings{chen2020simclr,\n"
                   "  title     = {A Simple Framework for Contrastive Learning of Visual Representations},\n"
                   "  author    = {Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},\n"
                   "  booktitle = {International Conference on Machine Learning (ICML)},\n"
                   "  year      = {2020}\n}"),
    },
    "iot": {
        "title": "Understanding and Generalizing Contrastive Learning from the Inverse Optimal Transport Perspective",
        "authors": "Liangliang Shi, Gu Zhang, Haoyu Zhen, Jintao Fan, Junchi Yan", "venue": "ICML 2023",
        "bibtex": ("@inproceedings{shi2023iot,\n"
                   "  title     = {Understanding and Generalizing Contrastive Learning from the Inverse Optimal Transport Perspective},\n"
                   "  author    = {Shi, Liangliang and Zhang, Gu and Zhen, Haoyu and Fan, Jintao and Yan, Junchi},\n"
                   "  booktitle = {International Conference on Machine Learning (ICML)},\n"
                   "  year      = {2023}\n}"),
    },
    "sinsim": {"title": "SinSim: Sinkhorn-Regularized SimCLR", "authors": "M. Hadi Sepanj, Paul Fieguth",
               "venue": "preprint"},
    "matching_gap": {"title": "Self-Supervised Learning with the Matching Gap", "authors": "anonymous",
                     "venue": "ICLR 2024 submission"},
    "otco": {"title": "Enhancing Contrastive Learning using Optimal Transport",
             "authors": "Aishwarya Kumaran, Akash Mittal, Stephen Owsesney", "venue": "slides"},
    "byol": {
        "title": "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
        "authors": "Jean-Bastien Grill et al.", "venue": "NeurIPS 2020", "url": "https://arxiv.org/abs/2006.07733",
    },
    "rince": {"title": "Robust Contrastive Learning against Noisy Views",
              "authors": "Ching-Yao Chuang, R Devon Hjelm, Xin Wang, Vibhav Vineet, Neel Joshi, Antonio Torralba, "
                         "Stefanie Jegelka, Yale Song", "venue": "CVPR 2022"},
}
PAPERS["iot_uni"] = PAPERS["iot"]

# GCA paper, Table 2, "Standard Setting": linear top-1 (%) mean +- std over 5 seeds, ResNet-18.
PAPER_TABLE2 = {
    "cifar10": {"simclr": (92.16, 0.16), "gca_ince": (92.36, 0.24), "rince": (91.05, 0.50),
                "gca_rince": (92.09, 0.22), "byol": (90.56, 0.59), "iot": (90.99, 0.54),
                "iot_uni": (90.89, 0.57), "gca_uot": (92.61, 0.32)},
    "cifar100": {"simclr": (69.95, 0.14), "gca_ince": (70.11, 0.45), "rince": (69.06, 0.64),
                 "gca_rince": (69.72, 0.27), "byol": (69.75, 0.37), "iot": (67.19, 0.21),
                 "iot_uni": (67.03, 0.40), "gca_uot": (71.45, 0.37)},
}
PRETTY = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenette": "Imagenette"}
HF_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100", "imagenette": "frgfm/imagenette"}
LIGHTLY_BENCHMARK = {  # published by lightly (docs: "Benchmarks"); a reference point, not measured by otzoo
    "imagenette": ("knn_top1_k20", "k-NN top-1 (k=20)", "88.9% with SimCLR, ResNet-18, 800 epochs at 128 px in 193 "
                   "minutes on one RTX A6000"),
    "cifar10": ("knn_top1", "k-NN top-1 (k=200)", "84.8% with SimCLR, ResNet-18, 200 epochs at batch 512 in 87 "
                "minutes on one RTX A6000"),
}
# the same CIFAR-10 result as one point of a time-to-accuracy plot: (minutes, k-NN top-1, label)
LIGHTLY_KNN_POINT = {"cifar10": (87, 84.8, "lightly, SimCLR 200 epochs, 1x RTX A6000 (published)")}
# and as one point of a milestones plot: (epochs, k-NN top-1, label)
LIGHTLY_KNN_EPOCHS = {"cifar10": (200, 84.8, "lightly, SimCLR 200 epochs (published)")}
