using System.Text;
using Google.Protobuf;
using Sandbox.Agent.Protocol;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.IntegrationTests.Support;

/// <summary>What a container run produced.</summary>
public sealed record ContainerResult(int ExitStatus, byte[] Stdout, byte[] Stderr)
{
    public string StdoutText => Encoding.UTF8.GetString(Stdout);
    public string StderrText => Encoding.UTF8.GetString(Stderr);
}

/// <summary>Runs a busybox container in a sandbox VM through the agent, as the shim will.</summary>
public sealed class GuestContainer
{
    private static readonly TimeSpan RpcTimeout = TimeSpan.FromSeconds(60);
    private readonly SandboxVm _vm;

    public GuestContainer(SandboxVm vm, string id)
    {
        _vm = vm;
        Id = id;
        HostRootfs = Path.Combine(vm.State.SharedDirectory, id, "rootfs");
    }

    public string Id { get; }
    public string HostRootfs { get; }
    private Sandbox.Agent.Protocol.Agent.AgentClient Agent => _vm.Agent.Client;
    private static DateTime Deadline => DateTime.UtcNow + RpcTimeout;

    public async Task CreateAsync(string specJson, bool stdin, CancellationToken cancellationToken)
    {
        BusyboxRootfs.Create(HostRootfs);
        await Agent.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = Id,
            OciSpecJson = ByteString.CopyFromUtf8(specJson),
            RootfsPath = _vm.GuestPathOf(HostRootfs),
            Stdin = stdin,
        }, deadline: Deadline, cancellationToken: cancellationToken);
    }

    /// <summary>Create, start, feed stdin, wait, and collect all output; then remove the container.</summary>
    public async Task<ContainerResult> RunAsync(string[] args, byte[]? stdin, CancellationToken cancellationToken)
    {
        await CreateAsync(OciSpecs.Busybox(args), stdin is not null, cancellationToken);
        try
        {
            var stdio = new GuestProcessStdio(Agent, Id);
            var stdout = new MemoryStream();
            var stderr = new MemoryStream();
            var readStdout = stdio.CopyStdoutToAsync(stdout, cancellationToken);
            var readStderr = stdio.CopyStderrToAsync(stderr, cancellationToken);
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = Id }, deadline: Deadline,
                cancellationToken: cancellationToken);
            if (stdin is not null)
                await stdio.WriteStdinFromAsync(new MemoryStream(stdin), cancellationToken);
            var exit = await WaitAsync(cancellationToken);
            await Task.WhenAll(readStdout, readStderr);
            return new ContainerResult(exit.ExitStatus, stdout.ToArray(), stderr.ToArray());
        }
        finally
        {
            await RemoveAsync(CancellationToken.None);
        }
    }

    public async Task<WaitProcessResponse> WaitAsync(CancellationToken cancellationToken, string execId = "") =>
        await Agent.WaitProcessAsync(new WaitProcessRequest { ContainerId = Id, ExecId = execId },
            deadline: Deadline, cancellationToken: cancellationToken);

    public async Task RemoveAsync(CancellationToken cancellationToken)
    {
        await Agent.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = Id, Force = true },
            deadline: Deadline, cancellationToken: cancellationToken);
        Directory.Delete(Path.GetDirectoryName(HostRootfs)!, recursive: true);
    }
}
