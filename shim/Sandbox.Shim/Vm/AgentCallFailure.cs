using System.Globalization;
using Grpc.Core;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Backend;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Vm;

/// <summary>
/// Turns a failed agent call into the error containerd shows: what failed, for which container and sandbox, the
/// agent's own words (crun's error text for a failed create or exec), and, when the agent itself is in trouble
/// (unreachable, silent), where to look: the guest console and `sandboxctl check`.
/// </summary>
internal static class AgentCallFailure
{
    public static SandboxBackendException Describe(RpcException e, string what, SandboxVm vm, SandboxConfiguration configuration)
    {
        var code = e.StatusCode switch
        {
            StatusCode.NotFound => TtrpcStatusCode.NotFound,
            StatusCode.InvalidArgument => TtrpcStatusCode.InvalidArgument,
            StatusCode.AlreadyExists => TtrpcStatusCode.AlreadyExists,
            StatusCode.FailedPrecondition => TtrpcStatusCode.FailedPrecondition,
            StatusCode.DeadlineExceeded => TtrpcStatusCode.DeadlineExceeded,
            StatusCode.Cancelled => TtrpcStatusCode.Canceled,
            _ => TtrpcStatusCode.Unknown,
        };
        string detail = e.StatusCode switch
        {
            StatusCode.DeadlineExceeded =>
                $"the agent did not answer within {configuration.Agent.RpcTimeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s " +
                $"(agent.rpc_timeout in {configuration.Source})",
            StatusCode.Unavailable => $"the agent cannot be reached ({e.Status.Detail})",
            _ => e.Status.Detail.StartsWith(what + ":", StringComparison.Ordinal) ? e.Status.Detail[(what.Length + 1)..].TrimStart() : e.Status.Detail,
        };
        // the agent's own answers (crun's error text, unknown ids, bad specs) say it all; a lost or silent agent needs a pointer
        bool agentTrouble = e.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Unavailable or StatusCode.Unknown or StatusCode.Cancelled;
        string hint = agentTrouble ? $" (guest console: {vm.Hypervisor.ConsoleLogPath}; host check: `sandboxctl check`)" : "";
        return new SandboxBackendException(code, $"{what} in sandbox {vm.SandboxId}: {detail}{hint}", e);
    }
}
