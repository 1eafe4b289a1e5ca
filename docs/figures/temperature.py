import numpy as np
import matplotlib.pyplot as plt
import softmaxkit as sk

logits = np.array([3.2, 1.3, 0.2, 0.8])
classes = ["cat", "dog", "tiger", "none"]
temperatures = [0.5, 1.0, 2.0, 5.0]
fig, axes = plt.subplots(1, len(temperatures), sharey=True)
for ax, t in zip(axes, temperatures):
    ax.bar(classes, sk.softmax(logits, temperature=t), color="tab:blue")
    ax.set_title(f"T = {t}")
    ax.tick_params(axis="x", labelrotation=90)
axes[0].set_ylabel("probability")
fig.suptitle("softmax([3.2, 1.3, 0.2, 0.8] / T)")
