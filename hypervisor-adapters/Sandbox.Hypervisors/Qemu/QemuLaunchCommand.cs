namespace Sandbox.Hypervisors.Qemu;

/// <summary>A program and its arguments, ready to exec.</summary>
public sealed record ProcessCommand(string Program, IReadOnlyList<string> Arguments);

/// <summary>
/// What to exec to start QEMU for a plan: QEMU itself, or, when the VM belongs in a network namespace,
/// `nsenter --net=PATH -- qemu-system-x86_64 ...`. nsenter enters the namespace and execs QEMU, so the pid of the
/// started process is QEMU's and its /proc/PID/ns/net is the namespace (Kata runs QEMU in the pod's namespace the
/// same way; containerd joins the pod's containers to the namespace of that pid). Pure.
/// </summary>
public static class QemuLaunchCommand
{
    public static ProcessCommand Build(QemuLaunchPlan plan)
    {
        var qemuArgs = QemuCommandLine.Build(plan.Spec);
        if (plan.Spec.NetworkNamespacePath is not { } netns)
            return new ProcessCommand(plan.QemuPath, qemuArgs);
        if (plan.NsenterPath is not { } nsenter)
            throw new ArgumentException($"sandbox {plan.Spec.SandboxId}: a network namespace needs the path of nsenter in the plan", nameof(plan));
        return new ProcessCommand(nsenter, ["--net=" + netns, "--", plan.QemuPath, .. qemuArgs]);
    }
}
