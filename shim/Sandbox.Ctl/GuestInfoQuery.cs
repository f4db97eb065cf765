using System.Diagnostics;
using Sandbox.Agent.Protocol;
using Sandbox.Runtime.Agent;

namespace Sandbox.Ctl;

/// <summary>One GetGuestInfo call to a sandbox's agent, bounded by <see cref="Timeout"/>: what `metrics` samples and
/// what `doctor` takes as the sign of a healthy guest.</summary>
public static class GuestInfoQuery
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public sealed record Answer(GetGuestInfoResponse? Info, TimeSpan RoundTrip, string? Error);

    public static async Task<Answer> AskAsync(IAgentDialer dialer, string sandboxId, CancellationToken cancellationToken)
    {
        using var agent = new AgentConnection(dialer, sandboxId);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        var clock = Stopwatch.StartNew();
        try
        {
            var info = await agent.Client.GetGuestInfoAsync(new GetGuestInfoRequest(), deadline: DateTime.UtcNow + Timeout,
                cancellationToken: timeout.Token);
            return new Answer(info, clock.Elapsed, null);
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or IOException or OperationCanceledException or HttpRequestException)
        {
            return new Answer(null, clock.Elapsed,
                $"the agent did not answer GetGuestInfo on {dialer.Description} within {Timeout.TotalSeconds:0} s: {e.Message}");
        }
    }
}
