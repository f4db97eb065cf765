using Sandbox.Agent.Containers;

namespace Sandbox.Agent;

/// <summary>
/// Where the agent finds crun and keeps its state. Defaults are the guest's; environment variables override them
/// for host-side development and tests:
/// SANDBOX_AGENT_CRUN (crun binary), SANDBOX_AGENT_RUN_DIR (state directory, default /run/sandbox),
/// SANDBOX_AGENT_CRUN_ARGS (extra crun global options, space separated), SANDBOX_AGENT_MODPROBE (modprobe binary).
/// </summary>
public sealed record AgentRuntime(string CrunPath, string RunDirectory, IReadOnlyList<string> CrunGlobalOptions, string ModprobePath)
{
    public static AgentRuntime FromEnvironment()
    {
        string crun = Environment.GetEnvironmentVariable("SANDBOX_AGENT_CRUN") is { Length: > 0 } c ? c : "/usr/bin/crun";
        string run = Environment.GetEnvironmentVariable("SANDBOX_AGENT_RUN_DIR") is { Length: > 0 } r ? r : "/run/sandbox";
        string[] extra = (Environment.GetEnvironmentVariable("SANDBOX_AGENT_CRUN_ARGS") ?? "")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string modprobe = Environment.GetEnvironmentVariable("SANDBOX_AGENT_MODPROBE") is { Length: > 0 } m ? m : "/sbin/modprobe";
        return new AgentRuntime(crun, run, extra, modprobe);
    }

    public string ContainersDirectory => Path.Combine(RunDirectory, "containers");
    public string CrunStateDirectory => Path.Combine(RunDirectory, "crun");
    public string CrunLogDirectory => Path.Combine(RunDirectory, "logs");
    public string ConsoleSocketDirectory => Path.Combine(RunDirectory, "tty");
    public string DefaultSharedMountPoint => Path.Combine(RunDirectory, "shared");

    /// <summary>The agent is the guest's init (PID 1): it owns the VM's mounts and modules. On a host (tests, development)
    /// it changes neither.</summary>
    public bool IsGuestInit => Environment.ProcessId == 1;

    /// <summary>Where the guest's agent keeps the read-only copy of crun (see <see cref="CrunBinary"/>); none elsewhere.</summary>
    public string? CrunReadOnlyDirectory => IsGuestInit ? Path.Combine(RunDirectory, "crun-binary") : null;

    public ContainerRunner CreateContainerRunner()
    {
        var commandLine = new CrunCommandLine(CrunPath, CrunStateDirectory, CrunGlobalOptions);
        var binary = new CrunBinary(CrunPath, CrunReadOnlyDirectory);
        return new ContainerRunner(new CrunRunner(commandLine, binary, CrunLogDirectory, TimeSpan.FromSeconds(60)), ContainersDirectory, ConsoleSocketDirectory);
    }
}
