using Sandbox.Hypervisors.Jail;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>A program and its arguments, ready to exec.</summary>
public sealed record ProcessCommand(string Program, IReadOnlyList<string> Arguments);

/// <summary>
/// What to exec to start QEMU and the vsock daemon for a plan. With a jailer: `sandbox-jailer JAIL-OPTIONS -- PROGRAM
/// ARGS` (<see cref="QemuJail"/>), which also enters the pod's network namespace. Without: QEMU itself, or, when the VM
/// belongs in a network namespace, `nsenter --net=PATH -- qemu-system-x86_64 ...`. The jailer and nsenter both exec the
/// program, so the pid of the started process is QEMU's and its /proc/PID/ns/net is the namespace (Kata runs QEMU in
/// the pod's namespace the same way; containerd joins the pod's containers to the namespace of that pid). Pure.
/// </summary>
public static class QemuLaunchCommand
{
    public static ProcessCommand Build(QemuLaunchPlan plan)
    {
        var qemuArgs = QemuCommandLine.Build(plan.Spec);
        if (plan.JailerPath is { } jailer)
            return new ProcessCommand(jailer, QemuJail.ForQemu(plan, plan.Spec.Files.JailRoot, LayoutOf(plan), qemuArgs).ToArguments());
        if (plan.Spec.NetworkNamespacePath is not { } netns)
            return new ProcessCommand(plan.QemuPath, qemuArgs);
        if (plan.NsenterPath is not { } nsenter)
            throw new ArgumentException($"sandbox {plan.Spec.SandboxId}: a network namespace needs the path of nsenter in the plan", nameof(plan));
        return new ProcessCommand(nsenter, ["--net=" + netns, "--", plan.QemuPath, .. qemuArgs]);
    }

    /// <summary>The vhost-device-vsock daemon of a hybrid-vsock plan.</summary>
    public static ProcessCommand BuildVsockDaemon(QemuLaunchPlan plan)
    {
        string daemon = plan.VsockDaemonPath ?? throw new ArgumentException($"sandbox {plan.Spec.SandboxId}: the plan has no vsock daemon", nameof(plan));
        var daemonArgs = VsockDaemonCommandLine.Build(plan.Spec.Files);
        return plan.JailerPath is { } jailer
            ? new ProcessCommand(jailer, QemuJail.ForVsockDaemon(plan, plan.Spec.Files.JailRoot, LayoutOf(plan), daemonArgs).ToArguments())
            : new ProcessCommand(daemon, daemonArgs);
    }

    private static JailHostLayout LayoutOf(QemuLaunchPlan plan) =>
        plan.JailLayout ?? throw new ArgumentException($"sandbox {plan.Spec.SandboxId}: a jailed plan needs the host's library layout", nameof(plan));
}
