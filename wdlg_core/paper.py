"""What the paper reports: the reference values our measurements are shown beside.

Source: Wang, Peng, He, Tan, "Wasserstein Distance-Based Deep Leakage from Gradients",
Entropy 25(5):810, 2023, Tables 1-5 (transcribed in shared/PAPER_NOTES.md). These are the
paper's numbers, never ours: every measured number in the book comes from a results file
written by ``wdlg_core``. Values are kept exactly as printed (units: seconds, image MSE,
success rate as a fraction). The paper does not say how its images are scaled; the companion
reads its MSE as on images in [0, 1], as DLG's code feeds them.
"""
from __future__ import annotations

CITATION = "Wang et al., Entropy 25(5):810, 2023"

#: Table 1: training parameter settings.
TABLE1 = {
    "learning rate": 0.1,
    "iterations": 500,
    "images": 300,
    "model": "LeNet",
    "initialisation": "x' ~ N(0, 1), y' ~ N(0, 1)",
    "weights": "random (untrained)",
    "datasets": "MNIST, Fashion-MNIST, SVHN, CIFAR-10, CIFAR-100",
}

#: Table 2: success rate and running time (s) at 448 iterations; dataset -> method -> values.
TABLE2 = {
    "mnist": {"dlg": {"success": 0.82, "time_s": 1345}, "wdlg": {"success": 0.86, "time_s": 842}},
    "fashion_mnist": {"dlg": {"success": 0.84, "time_s": 1874}, "wdlg": {"success": 0.88, "time_s": 1026}},
    "svhn": {"dlg": {"success": 0.79, "time_s": 2115}, "wdlg": {"success": 0.86, "time_s": 1231}},
    "cifar100": {"dlg": {"success": 0.76, "time_s": 2315}, "wdlg": {"success": 0.81, "time_s": 1510}},
}
TABLE2_ITERATIONS = 448
#: Figures 8-14 use Table 2's budget (captions of 8-10, text on 12-14), except that the text on
#: Figure 11 (Section 4.5) says "440 iterative attacks".
FIGURE11_ITERATIONS = 440

#: Table 3: reconstruction MSE (mean, std); method -> (model, dataset) -> (mean, std).
TABLE3 = {
    "dlg": {("lenet", "mnist"): (0.0037, 0.00082), ("cnn6", "mnist"): (0.015, 0.0053),
            ("lenet", "cifar10"): (0.013, 0.0012), ("cnn6", "cifar10"): (0.0513, 0.034)},
    "rgap": {("lenet", "mnist"): (0.0012, 0.00054), ("cnn6", "mnist"): (0.0068, 0.0012),
             ("lenet", "cifar10"): (0.0048, 0.00081), ("cnn6", "cifar10"): (0.0258, 0.016)},
    "wdlg": {("lenet", "mnist"): (0.0014, 0.00069), ("cnn6", "mnist"): (0.0057, 0.0029),
             ("lenet", "cifar10"): (0.0045, 0.00075), ("cnn6", "cifar10"): (0.028, 0.0064)},
}

#: Table 4: CIFAR-10, batch size 1 vs 4; method -> batch size -> final loss and image MSE.
#: (The MSE column contradicts the paper's text, which says WDLG is better at both sizes.)
TABLE4 = {
    "wdlg": {1: {"loss": 4.48e-5, "mse": 1.39e-2}, 4: {"loss": 1.13e-4, "mse": 4.56e-3}},
    "dlg": {1: {"loss": 4.73e-5, "mse": 4.34e-3}, 4: {"loss": 1.11e-4, "mse": 7.93e-3}},
}

#: Table 5: ablation, LeNet + CIFAR-10, 500 iterations; variant -> values.
TABLE5 = {
    "dlg": {"loss": 8.06e-5, "mse": 1.3e-2, "iterations_to_converge": 300, "success": 0.74},
    "idlg": {"loss": 6.4e-5, "mse": 4.56e-3, "iterations_to_converge": 150, "success": 0.78},
    "wdlg": {"loss": 5.23e-5, "mse": 4.6e-3, "iterations_to_converge": 140, "success": 0.80},
}
TABLE5_LABELS = {"dlg": "DLG", "idlg": "+ label restoration (iDLG)", "wdlg": "+ Wasserstein distance (WDLG)"}

#: Section 4.5 (Figures 11-14): the paper's qualitative statements about the noise defence.
NOISE_DEFENSE = {
    2: "some leakage: the image is not completely disclosed but shows a certain degree of leakage",
    4: "almost none: the original can hardly be seen",
    10: "none: the original cannot be seen at all",
}
