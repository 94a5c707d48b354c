<?xml version="1.0" encoding="US-ASCII" standalone="yes"?>
<q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2" xmlns="http://quakeml.org/xmlns/bed/1.2" xmlns:ingv="http://webservices.ingv.it/fdsnws/event/1">
  <eventParameters publicID="smi:webservices.ingv.it/fdsnws/event/1/query">
    <event publicID="smi:webservices.ingv.it/fdsnws/event/1/query?eventId=25883901">
      <type>earthquake</type>
      <description>
        <type>region name</type>
        <text>4 km SE Pozzuoli (NA)</text>
      </description>
      <preferredMagnitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91812661</preferredMagnitudeID>
      <preferredOriginID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=86025501</preferredOriginID>
      <creationInfo>
        <agencyID>INGV</agencyID>
        <author>SURVEY-INGV-OV#WinPick</author>
        <creationTime>2021-01-01T02:34:48</creationTime>
        <ingv:id_locator>4439</ingv:id_locator>
      </creationInfo>
      <origin publicID="smi:webservices.ingv.it/fdsnws/event/1/query?originId=86025501">
        <evaluationMode>manual</evaluationMode>
        <type>hypocenter</type>
        <time>
          <value>2021-01-01T02:13:58.519000</value>
        </time>
        <latitude>
          <value>40.827333</value>
        </latitude>
        <longitude>
          <value>14.133667</value>
        </longitude>
        <depth>
          <value>1640</value>
          <uncertainty>100</uncertainty>
        </depth>
        <depthType>from location</depthType>
        <originUncertainty>
          <preferredDescription>horizontal uncertainty</preferredDescription>
          <horizontalUncertainty>100.0</horizontalUncertainty>
          <confidenceLevel>68</confidenceLevel>
        </originUncertainty>
        <quality>
          <azimuthalGap>135</azimuthalGap>
          <associatedPhaseCount>1</associatedPhaseCount>
          <usedPhaseCount>1</usedPhaseCount>
          <standardError>0.06</standardError>
          <associatedStationCount>0</associatedStationCount>
          <usedStationCount>0</usedStationCount>
        </quality>
        <evaluationStatus>reviewed</evaluationStatus>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=271</methodID>
        <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=71</earthModelID>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV-OV#WinPick</author>
          <version>200</version>
          <creationTime>2021-01-05T08:54:03</creationTime>
        </creationInfo>
      </origin>
      <magnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91812661">
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=86025501</originID>
        <type>Md</type>
        <mag>
          <value>1.0</value>
          <uncertainty>0.3</uncertainty>
        </mag>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=271</methodID>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>Sala Operativa INGV_OV (Napoli)</author>
          <creationTime>2021-01-05T08:54:03</creationTime>
        </creationInfo>
      </magnitude>
    </event>
  </eventParameters>
</q:quakeml>
