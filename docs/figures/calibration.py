import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import softmaxkit as sk

X, y = load_digits(return_X_y=True)
X_fit, X_rest, y_fit, y_rest = train_test_split(X / 16, y, test_size=0.5, random_state=0, stratify=y)
X_cal, X_test, y_cal, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0,
                                                stratify=y_rest)
model = sk.SoftmaxRegression().fit(X_fit, y_fit)
T = sk.fit_temperature(model.decision_function(X_cal), y_cal)
logits = model.decision_function(X_test)
fig, (before, after) = plt.subplots(1, 2, figsize=(7.0, 3.4))
sk.reliability_diagram(sk.softmax(logits), y_test, ax=before)
sk.reliability_diagram(sk.softmax(logits / T), y_test, ax=after)
before.set_xlabel("confidence, as fitted")
after.set_xlabel(f"confidence, temperature {T:.2f}")
