using Grpc.Core;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Runtime.Network;

/// <summary>
/// Gives the guest the pod's interfaces and routes through the agent: UpdateInterface for each card (the guest finds
/// it by MAC, renames it, sets MTU and addresses, brings it up), then one UpdateRoutes with every route.
/// </summary>
public static class GuestNetworkClient
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    public static UpdateInterfaceRequest InterfaceRequest(GuestNic nic)
    {
        var networkInterface = new NetworkInterface { Name = nic.Name, Mac = nic.Mac, Mtu = (uint)Math.Max(0, nic.Mtu) };
        networkInterface.Addresses.AddRange(nic.Addresses.Select(a => new IpAddress { Address = a.Address, PrefixLength = (uint)a.PrefixLength }));
        return new UpdateInterfaceRequest { Interface = networkInterface };
    }

    /// <summary>All cards' routes: every link route (no gateway) before any gateway route.</summary>
    public static UpdateRoutesRequest RoutesRequest(IReadOnlyList<GuestNic> nics)
    {
        var request = new UpdateRoutesRequest();
        request.Routes.AddRange(nics
            .SelectMany(nic => nic.Routes)
            .OrderBy(r => r.Gateway.Length == 0 ? 0 : 1)
            .Select(r => new Route { Destination = r.Destination, Gateway = r.Gateway, Device = r.Device, Source = r.Source, Scope = r.Scope }));
        return request;
    }

    /// <summary>Sends the cards and routes. No cards: no call. Failures throw <see cref="PodNetworkException"/>
    /// naming the call, the card and the agent's status.</summary>
    public static async Task ApplyAsync(AgentClient agent, PodNetwork network, CancellationToken cancellationToken)
    {
        var nics = network.Nics;
        if (nics.Count == 0)
            return;
        foreach (var nic in nics)
        {
            await CallAsync(network, $"UpdateInterface for {nic.Name} ({nic.Mac}, {string.Join(", ", nic.Addresses)})",
                () => agent.UpdateInterfaceAsync(InterfaceRequest(nic), deadline: DateTime.UtcNow + CallTimeout,
                    cancellationToken: cancellationToken).ResponseAsync);
        }
        var routes = RoutesRequest(nics);
        await CallAsync(network, $"UpdateRoutes ({routes.Routes.Count} routes)",
            () => agent.UpdateRoutesAsync(routes, deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancellationToken).ResponseAsync);
    }

    private static async Task CallAsync<T>(PodNetwork network, string what, Func<Task<T>> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            var hint = e.StatusCode == StatusCode.Unimplemented
                ? " The guest agent does not implement pod networking: rebuild the guest image (make image)."
                : "";
            throw new PodNetworkException(network.SandboxId, network.NetworkNamespacePath,
                $"the guest agent refused {what}: {e.Status.StatusCode} {e.Status.Detail}.{hint}", e);
        }
    }
}
